"""Domain: the environment spec, its validation, the status machine and the use cases.

Routes (native and, later, MWAA) call the functions in `hangar.domain.environments`
with keyword arguments; nothing here knows about HTTP.
"""
