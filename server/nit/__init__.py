"""NIT: the small tool-scripting language the LLM may emit inside <nit> … </nit>.

    from server.nit import Runtime, parse, extract_scripts, run_with_reflection
    runtime = Runtime(call_tool)             # call_tool(name, args) -> result (async; the hub provides it)
    result = await runtime.run(parse(src))   # NitSyntaxError / NitRuntimeError carry line, column, render()
    outcome = await run_with_reflection(src, runtime, ask_llm)   # one corrected attempt on error

See syntax.py for the language and runtime.py for the async semantics.
"""

from server.nit.reflect import ReflectionOutcome, reflection_text, run_with_reflection
from server.nit.runtime import CallRecord, NitRuntimeError, Pending, RunResult, Runtime
from server.nit.syntax import NitError, NitSyntaxError, Script, extract_scripts, parse

__all__ = ["CallRecord", "NitError", "NitRuntimeError", "NitSyntaxError", "Pending", "ReflectionOutcome",
           "RunResult", "Runtime", "Script", "extract_scripts", "parse", "reflection_text", "run_with_reflection"]
