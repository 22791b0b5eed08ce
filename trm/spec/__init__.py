"""The run spec, split by idea:

  fields.py     the dataclasses; each knob is one field whose metadata carries its range,
                doc line, paper / official names and signature behaviour, and the tables
                derived from them (FIELD_RANGES, NON_SEMANTIC, SIGNATURE_SKIPS_DEFAULT)
  signature.py  run and data signatures (the hashes naming run directories and datasets)
  validate.py   mapping -> dataclasses with strict keys, types and ranges (SpecError)
  layering.py   YAML files layered over the defaults into one resolved spec, with caches

trm.config re-exports the public names (`from trm import config as C`).
"""
