"""Data in: interaction tables and ids (:mod:`.interactions`), the named data sets (:mod:`.datasets`),
splits (:mod:`.splits`) and item text encoded into node features (:mod:`.text_features`)."""
