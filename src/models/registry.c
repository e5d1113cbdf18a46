/* The table of models pixmend knows. */
#include "models/model.h"
#include "models/patchmatch.h"
#include "models/lama.h"
#include "models/ddcolor.h"

#include <string.h>

const pm_model_desc *const pm_models[] = {
    &pm_model_patchmatch,
    &pm_model_lama,
    &pm_model_ddcolor,
    NULL,
};

const pm_model_desc *pm_model_find(const char *name)
{
    for (int i = 0; pm_models[i]; i++)
        if (strcmp(pm_models[i]->name, name) == 0)
            return pm_models[i];
    return NULL;
}
