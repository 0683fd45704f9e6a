"""User records: finding, creating and checking users (``service``) and the request and answer
shapes every package shares (``schemas``). The sign-in flows built on them are ``identity``'s."""
