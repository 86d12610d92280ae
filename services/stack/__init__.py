"""The embedded single-machine stack: tansu, tritonserver, Feast and the Faust workers."""
