"""Serving a trained model over HTTP: ``inputs`` (an ECG as a request carries it), ``batcher``
(concurrent requests in one batch of the model), ``service`` (what the endpoints compute), ``app``
(the FastAPI app and its page); ``mets-fast serve`` runs it under uvicorn."""
