"""What the control plane and the org instance both speak, in one package below both.

- the wire contract: :mod:`.contract`;
- tokens: the header check (:mod:`.jose_header`) and the segment-checked PyJWT (:mod:`.jws`);
- errors: the problem+json tree (:mod:`.problems`), its Litestar handlers
  (:mod:`.problem_handlers`) and its OpenAPI schema (:mod:`.problem_schema`);
- the log set-up (:mod:`.logs`) and request metrics (:mod:`.http_metrics`);
- keyset cursors (:mod:`.cursors`), the secret box (:mod:`.secret_box`), fault points
  (:mod:`.faults`);
- the answers given before an app runs (:mod:`.inbound`, :mod:`.http_protocol`,
  :mod:`.ws_handshake`, :mod:`.ws_refusals`);
- the backup archive format and protocol (:mod:`.backup`).

It imports neither service nor the provisioners (``lint-imports``). Nothing is imported here:
an instance loads only the modules it uses.
"""
