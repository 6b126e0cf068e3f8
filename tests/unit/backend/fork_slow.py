"""A module whose import lasts until the file HOLD_IMPORTS names exists."""
import os
import time

while not os.path.exists(os.environ["HOLD_IMPORTS"]):
    time.sleep(0.05)
