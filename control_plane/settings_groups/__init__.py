"""The settings groups ``control_plane.settings.Settings`` is made of, one module per concern."""
