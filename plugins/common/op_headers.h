// GENERATED from plugins/opdefs.py (the op contract) by
//   python plugins/opdefs.py --write-cpp
// Each op's own header (plugins/<folder>/<folder>.h: params struct, OpTraits), for
// common/all_ops.h; a new op in opdefs.py adds its line here when regenerated.
#pragma once

#include "../pyramid_roi_align/pyramid_roi_align.h"
#include "../proposal_layer/proposal_layer.h"
#include "../detection_layer/detection_layer.h"
