"""The inbox loop: read the accounts' mailboxes, classify what arrives, and apply the answers to the leads."""
