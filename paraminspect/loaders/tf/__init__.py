"""TensorFlow: SavedModel folders, tf.train.Checkpoint folders and tensor-bundle indexes."""
