"""VNN-COMP interface: ONNX models with VNN-LIB properties.

* :mod:`gridverify.vnncomp.vnnlib` - VNN-LIB 1.0 parser (``parse_vnnlib``), 2.0
  through the optional ``vnnlib`` package (:mod:`gridverify.vnncomp.vnnlib2`);
* :mod:`gridverify.vnncomp.runner` - decide one instance (``run_instance``);
* :mod:`gridverify.vnncomp.result` - competition result files;
* :mod:`gridverify.vnncomp.batch` - run a benchmark folder (``run_batch``);
* :mod:`gridverify.vnncomp.instances` - ACOPF instances of our own.

Submodules are not imported here, so that ``import gridverify.vnncomp`` stays cheap.
"""
