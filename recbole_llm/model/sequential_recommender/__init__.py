"""The LLM recommenders provided by recbole-llm: IDLEAdapter and RARec (their ID models are in
``recbole_llm.id_models``)."""
