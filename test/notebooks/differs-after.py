# Probe for differs.ipynb: both results depend on things a restore cannot keep.
next_sample = next(samples)  # a new random stream after the generator is re-created
found = handle_ids.get(id(handle))  # the restored object has another id()
