"""mh_lightning: QLoRA fine-tuning of Falcon on HUMAN/ASSISTANT mental-health conversations."""

import logging
import warnings

from mh_lightning import compat

__version__ = "0.1.0"

compat.install()  # the old flat module paths (`mh_lightning.fit`, `mh_lightning.checkpoint`, ...)


class _NoKernelsPackageNotice(logging.Filter):
    """Drops one bitsandbytes 0.50.2 import-time message, only when the `kernels` package is absent.

    On an AVX512_BF16 CPU, importing bitsandbytes tries to fetch a faster kernel for its repacked
    4-bit CPU path (`gemv_4bit`) from the hub through the optional `kernels` package, and logs
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'" when
    that package is not installed. `mh_lightning.model.load_base_model` turns that repacked path
    off (it has no backward pass, docs/bnb_avx512bf16.md), so the kernel would never run here:
    the message is noise. Any other failure to load it is still shown. The filter sits on that
    one logger and must be in place before bitsandbytes is first imported, hence here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")
                    and "No module named 'kernels'" in str(record.args))


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NoKernelsPackageNotice())

# Lightning 2.6.6 builds torch's `LeafSpec` when it splits a batch into tensors; torch 2.13
# deprecated that class (FutureWarning), and every fit printed it. Lightning's call, not ours,
# and harmless with the pinned versions: only that message, only from that module.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning, module=r"lightning\.pytorch\.utilities\._pytree")
