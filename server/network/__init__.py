"""The API of client networks (issue #14): the Network object and its reservations,
firewall rules and leases (`handlers`, `parts`), the checks of firewall rules with
`nft --check` (`nftcheck`), and the rules between VMs and networks (`vmnets`). Routes
are registered in `server.routes`.
"""
