"""SERVE_MODE=ray: the same app as the ingress of a Ray Serve application, the model work in
transcription replicas (the `ray` extra). Imported only in that mode."""
