"""The shipped model files (weights, configuration, label map, model card), installed as
package data so :func:`sleepnet.weights.load_model` finds them outside a checkout."""
