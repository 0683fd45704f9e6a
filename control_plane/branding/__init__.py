"""An org's branding and metadata: display name, logo, primary colour, contact email and a
bounded metadata object; inherited by child orgs value by value (docs/branding.md)."""
