"""The web console (issue #18): one page served by herd-api itself under `/ui/`.

`serve.add_ui` registers the page (`app/`: plain ES modules, no build step) and the
third-party code it loads from `node_modules/` (xterm.js, noVNC, js-yaml, jsdiff at the
versions pinned in `package-lock.json`, installed by `scripts/setup.sh` with `npm ci`).
The files hold no data and are served to anyone (`server.auth`); every call the page
makes goes to the API with the token the user signed in with. Called by `server.app`.
"""
