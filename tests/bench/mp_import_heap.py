# Runs on the MicroPython VM: the heap that importing xmpp_lite takes, module by module.
#
#     micropython -X heapsize=1m tests/bench/mp_import_heap.py LIB MODULE...
#
# LIB is the folder that holds xmpp_lite (compiled to .mpy, as a board runs it), or a ROMFS image
# (a file ending in .romfs) that holds it: the image is mounted (vfs.VfsRom) and its .mpy files run
# in place, as from a board's ROMFS partition; the image itself is read before "MODULE -". The modules are
# imported in the order given, each after the modules it imports, so that each import loads just
# that module. After each one: a line "MODULE name heap", then micropython.qstr_info()'s line (the
# interned names, which are never freed); heap is gc.mem_alloc() after a collect. "MODULE -" comes
# first, before any import: what the VM and this script take.
import gc
import sys

import micropython

if sys.argv[1].endswith(".romfs"):
    import vfs

    with open(sys.argv[1], "rb") as f:
        image = f.read()
    vfs.mount(vfs.VfsRom(image), "/rom")
    sys.path.insert(0, "/rom")
else:
    sys.path.insert(0, sys.argv[1])


def report(name):
    gc.collect()
    print("MODULE %s %d" % (name, gc.mem_alloc()))
    micropython.qstr_info()


report("-")
for module in sys.argv[2:]:
    __import__(module)
    report(module)
