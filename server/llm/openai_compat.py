"""Any OpenAI-compatible chat endpoint (ollama, llama.cpp server, vLLM, cloud), streamed.

Server-sent events from `POST {base_url}/chat/completions` with
`stream: true`; each `choices[0].delta.content` is one delta. Closing the
iterator closes the HTTP response, which stops a well-behaved server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import httpx

from server.llm.base import LlmRequest


class OpenAICompatProvider:
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                         timeout=httpx.Timeout(timeout_s, connect=5.0))

    async def stream(self, request: LlmRequest) -> AsyncGenerator[str, None]:  # aclose() stops it
        body = {
            "model": self.model,
            "stream": True,
            "max_tokens": request.max_new_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.stop:
            body["stop"] = request.stop
        async with self._client.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:500]
                raise RuntimeError(f"LLM endpoint answered {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                delta = _delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta

    async def aclose(self) -> None:
        await self._client.aclose()


def _delta(line: str) -> str | None:
    """The content delta in one SSE line; '' for lines without text, None at [DONE]."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        choices = json.loads(payload).get("choices") or [{}]
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"malformed event from LLM endpoint: {payload[:200]}") from exc
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""
