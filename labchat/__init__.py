"""labchat: a chat room for a local network that survives the network it runs on."""

__version__ = "0.1.0"
