"""The OpenAI-compatible HTTP API on 127.0.0.1: `/v1/chat/completions` and `/v1/models`.

convert.py turns a request body into the engine's messages and options (with the checks in
`qwen_tray.admission`, shared with the ZeroMQ API); auth.py is the trust model (key, Host, Origin);
app.py is the Starlette app; server.py runs uvicorn on its own thread.
"""
