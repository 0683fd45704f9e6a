"""The plan catalogue (``plans``) and the features catalogue: feature keys, their access rules,
and the API that edits them."""
