"""The token document: the one format both the authorizer and the rotate function read."""
