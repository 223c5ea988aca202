"""Data in: interaction tables and ids (:mod:`.interactions`), the named data sets (:mod:`.datasets`),
splits (:mod:`.splits`), item text encoded into node features (:mod:`.text_features`) and
synthetic power-law graphs for scaling runs (:mod:`.synthetic`)."""
