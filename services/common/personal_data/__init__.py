"""Personal data encrypted per person, so that erasing a person is deleting their key
(crypto-shredding, docs/decisions/0007): the master key (`master_key.py`), the data keys kept
wrapped in each service's database (`keys.py`), one value sealed under a data key
(`envelope.py`) and the keyed hash by which a person is found without their number in clear
(`blind_index.py`)."""
