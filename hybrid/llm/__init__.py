"""The LLM stage: the local model backend (:mod:`.backend`), the prompt-driven reranker
(:mod:`.reranker`), the registered ``llm`` / ``hybrid+llm`` models (:mod:`.rerank_model`) and the
fusion of their scores with the retriever's (:mod:`.fusion`)."""
