"""faceedit: region-aware facial attribute editing as gRPC services."""

import logging
import re

# transformers >= 5 names its torchvision image processors `<Model>ImageProcessor` and, without torchvision (not a
# dependency of ours), falls back to the PIL ones `<Model>ImageProcessorPil` with a warning per class. The PIL
# processors are the ones faceedit means to use (diffusers' SDXL pipeline asks for CLIP's and SigLIP's, the parser
# export for SegFormer's), so the warning concerns no user; it printed three lines on every start of the
# inpainter and the model builds. Exactly that message is filtered, on the one logger that emits it, here, where
# every faceedit process passes before transformers loads.
_TORCHVISION_FALLBACK = re.compile(r"`\w+ImageProcessor` requires torchvision \(not installed\); falling back to")


def _not_torchvision_fallback(record: logging.LogRecord) -> bool:
    return not _TORCHVISION_FALLBACK.match(record.getMessage())


logging.getLogger("transformers.utils.import_utils").addFilter(_not_torchvision_fallback)
