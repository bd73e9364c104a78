"""Models provided by recbole-llm (looked up before RecBole's own by :func:`recbole_llm.utils.get_model`)."""
