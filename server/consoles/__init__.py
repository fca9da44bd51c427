"""herd-api's handlers that reach into a node (issue #16): the serial console and VNC
WebSockets (`console`), the console log (`logs`) and the current figures (`figures`), all
through the node endpoints (`nodelink`: URL, key, signed tickets, errors)."""
