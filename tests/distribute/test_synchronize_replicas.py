"""`SynchronizeReplicas` in one process (its fit is tested by test_data_parallel.py)."""

from keras_imsvd import distribute


def test_config_round_trip():
    callback = distribute.SynchronizeReplicas(average_moving_statistics=False)
    config = callback.get_config()
    assert config == {"average_moving_statistics": False}
    assert distribute.SynchronizeReplicas(**config).average_moving_statistics is False
