"""Operating the fleet: instance versions (``registry``), per-org maintenance windows
(``windows``) and staged rollouts (``plan``, ``engine``); see docs/rollouts.md."""
