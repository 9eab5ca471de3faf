"""Type stubs of the native module ``kai._kai``."""

from os import PathLike

import numpy as np
import numpy.typing as npt

__version__: str

class TextEmbedder:
    """A text embedding model loaded in this process."""

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        model_dir: str | PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def max_sequence_length(self) -> int: ...
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...
