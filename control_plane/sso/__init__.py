"""Sign-in through external identity providers (SSO): providers found by entry point, linked
accounts, claim-mapping rules that manage org memberships, and orgs that require SSO
(docs/identity.md, *Single sign-on*)."""
