"""The search API and web page for frontends (FastAPI, served by uvicorn)."""
