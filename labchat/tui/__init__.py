"""The full-screen Textual client. It talks to the network only through `labchat.client.core`."""
