"""Every test process prepares TensorFlow as the project's own processes do (Keras 2, the log
level) before any test module imports it: pytest loads this file first."""

from components.tf_process import prepare_tf_process

prepare_tf_process()

# The MariaDB server's fixtures (`mariadb`, `mariadb_database`), for every test directory.
pytest_plugins = ["tests.mariadb"]
