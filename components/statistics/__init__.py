"""StatisticsGen's executor: TFX's, reading GZIP tf.Example TFRecords through tf.data."""
