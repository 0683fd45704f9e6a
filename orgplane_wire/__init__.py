"""What the control plane and the org instance both speak, in one package below both.

The wire contract (:mod:`.contract`), the JWS header check and verification (:mod:`.jose_header`,
:mod:`.jws`), problem+json errors (:mod:`.problems`, :mod:`.problem_handlers`, :mod:`.problem_schema`), the
log set-up (:mod:`.logs`), request metrics (:mod:`.http_metrics`), keyset cursors
(:mod:`.cursors`), the secret box (:mod:`.secret_box`), fault points (:mod:`.faults`), the answers refused before an app runs (:mod:`.inbound`,
:mod:`.http_protocol`, :mod:`.ws_handshake`, :mod:`.ws_refusals`) and the backup archive
format (:mod:`.backup`). It imports neither service nor the provisioners (``lint-imports``).
Nothing is imported here: an instance loads only the modules it uses.
"""
