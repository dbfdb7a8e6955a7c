# Turns migrations/<backend>/ into C data compiled into ledgerd (see src/store/migrations.h):
# every *.sql file but schema.sql, in file-name order, and the directory's ledgerd.sum.
# Names are not checked here: the runtime loader (src/store/migset.c) refuses a bad name, a gap
# or a file missing from ledgerd.sum exactly as it would in the directory. Names and contents
# are both written as byte arrays, so no byte of either needs escaping.
# Usage: cmake -DBACKEND=sqlite -DDIR=... -DOUT=... -P embed_migrations.cmake
if(NOT BACKEND MATCHES "^[a-z0-9_]+$")
  message(FATAL_ERROR "BACKEND must be a C identifier part: ${BACKEND}")
endif()

# Appends "static const unsigned char <var>[] = {0x.., ..., 0};" for the bytes of hex to body
# (unsigned: a byte over 0x7f, as in UTF-8 text, does not fit a signed char constant).
function(embed_bytes var hex)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  set(body "${body}static const unsigned char ${var}[] = {${bytes}0};\n" PARENT_SCOPE)
endfunction()

file(GLOB files LIST_DIRECTORIES false RELATIVE ${DIR} ${DIR}/*.sql)
list(REMOVE_ITEM files schema.sql)
list(SORT files COMPARE STRING)

set(body "/* Generated from migrations/${BACKEND}/ by cmake/embed_migrations.cmake. */\n")
string(APPEND body "#include \"store/migrations.h\"\n\n")
set(entries "")
set(count 0)
foreach(f IN LISTS files)
  string(HEX "${f}" name_hex)
  string(TOLOWER "${name_hex}" name_hex)
  embed_bytes(n_${count} "${name_hex}")
  if(NOT EXISTS "${DIR}/${f}")
    # A name CMake cannot spell back (a backslash becomes a path separator): refuse the build
    # rather than leave the file out of the built-in copy.
    message(FATAL_ERROR "cannot read migrations/${BACKEND}/${f}: rename it")
  endif()
  file(READ ${DIR}/${f} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR nbytes "${hexlen} / 2")
  embed_bytes(m_${count} "${hex}")
  string(APPEND entries "    {(const char *)n_${count}, (const char *)m_${count}, ${nbytes}},\n")
  math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
  set(entries "    {\"\", \"\", 0},\n") # C has no empty arrays; count stays 0
endif()
string(APPEND body "\nconst struct store_migration_blob store_migrations_${BACKEND}[] = {\n")
string(APPEND body "${entries}};\n")
string(APPEND body "const size_t store_migrations_${BACKEND}_count = ${count};\n\n")

if(EXISTS ${DIR}/ledgerd.sum AND NOT IS_DIRECTORY ${DIR}/ledgerd.sum)
  file(READ ${DIR}/ledgerd.sum hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR nbytes "${hexlen} / 2")
  embed_bytes(sum "${hex}")
  string(APPEND body "const struct store_migration_blob store_migrations_${BACKEND}_sum = ")
  string(APPEND body "{\"ledgerd.sum\", (const char *)sum, ${nbytes}};\n")
else()
  string(APPEND body "const struct store_migration_blob store_migrations_${BACKEND}_sum = ")
  string(APPEND body "{\"\", \"\", 0};\n")
endif()

file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
