"""Who the caller is and what they may do: tokens, sign-in, MFA, OAuth2 clients, route guards."""
