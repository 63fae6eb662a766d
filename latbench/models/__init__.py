"""Model builders and exporters.

* :mod:`latbench.models.keras_nb201`: the NB201 network in Keras, built from a cell graph.
* :mod:`latbench.models.export`: SavedModel and TFLite (fp32 / fp16 / int8) exporters, a TFLite interpreter.
* :mod:`latbench.models.layerwise`: every op of a network as its own tiny model (layer-wise baseline).

TensorFlow is imported inside the functions, so importing these modules is cheap.
"""
