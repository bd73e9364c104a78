"""ID models: the pretrained sequential recommenders whose frozen representations the LLM models
consume (the second stage of the data flow, after ``data/`` and before ``lm/``).

* :mod:`~recbole_llm.id_models.comirec` -- ComiRec-SA (Cen et al., KDD 2020), the papers' default
  ID model, absent from RecBole (RecBole's own SASRec, GRU4Rec, BERT4Rec, Caser and NARM are
  registered as they are);
* :mod:`~recbole_llm.id_models.pretrained` -- the registry (a model of this package is an ID model
  by defining ``id_representation``; RecBole's are registered with :func:`register_id_model`), the
  frozen wrapper with one meaning across those models (``user_representation``,
  ``item_embeddings``), safe loading, and the cache of trained checkpoints that makes the
  benchmark's row of an ID model the LLM model's base.
"""

from recbole_llm.id_models.comirec import ComiRec
from recbole_llm.id_models.pretrained import (
    PretrainedIDModel, cache_entry_run, cache_path, cache_run, cached_checkpoint, checkpoint_sha256, id_model_request,
    is_id_model, load_id_model, register_id_model, registered, representation_of, weights_sha256,
)

__all__ = ["ComiRec", "PretrainedIDModel", "cache_entry_run", "cache_path", "cache_run", "cached_checkpoint",
           "checkpoint_sha256", "id_model_request",
           "is_id_model", "load_id_model", "register_id_model", "registered", "representation_of", "weights_sha256"]
