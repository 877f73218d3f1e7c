"""NeoNetSlicer's Qt-free library: MRML geometry conversion, output nodes, Logic, CLI runner, dependencies.

Nothing here imports Qt, so it runs on a plain MRML scene from the ``slicer-core`` wheel as well as
inside the Slicer application.
"""
