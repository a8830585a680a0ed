"""Tokens on the local stack: the local issuer (keys, JWKS, discovery, minting) and who plays the
template's issuers."""
