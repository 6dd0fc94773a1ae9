"""Text primitives every layer shares: which script a character is in, which language a text is in.

Plumbing, not a domain: the prompt, the voices, the intent matcher, the time parser and the
memory's lexical channel all ask the same question, so the rules live here once.
"""
