// libpng 1.6 (Debian's libpng-dev).
#include <png.h>
