"""The API of client networks (issue #14): the Network object and its reservations,
firewall rules and leases (`handlers`, `parts`, `writes`), networks in `apply`
(`applynet`), and the checks of firewall rules with `nft --check` (`nftcheck`). What a
VM's NICs may say of networks is `server.nics`. Routes are registered in `server.routes`.
"""
