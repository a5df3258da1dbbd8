"""labchat.tui.screens."""
