"""The LLM stage: the local model backend (:mod:`.backend`), the prompt-driven reranker
(:mod:`.reranker`) and the registered ``llm`` / ``hybrid+llm`` models (:mod:`.rerank_model`)."""
