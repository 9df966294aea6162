# The native build description (plugins/native.json) for CMake, and the CUDA architecture list.
# Included by CMakeLists.txt, plugins/host/CMakeLists.txt and plugins/trt/CMakeLists.txt.
#
# The rules are those of plugins/native_build.py (which setup.py and mrcnn-build-plugins use):
#   * paths in the description are relative to the repository root;
#   * the op list is the X-macro MRCNN_CONTRACT_OPS in plugins/common/op_contract.h, X(Op, folder);
#     a target's per_op patterns are expanded with {folder} for every op, after its own sources;
#   * exact_math.cxx goes to every C++ compile, exact_math.cuda to every nvcc compile of every target;
#   * target NAME is the CMake target mrcnn_NAME; each of its uses is linked (an OBJECT library
#     contributes its objects and its include folders and defines).
#
#   mrcnn_native_add(NAME)                       add target mrcnn_NAME from the description
#   mrcnn_native_sources(NAME OUT)               its own sources (absolute paths)
#   mrcnn_cuda_architectures(ARCHS PTX OUT)      "50;86" + "" -> "50-real;86-real;86-virtual"
#   mrcnn_cuda_arch_tag(ARCHITECTURES OUT)       "50-real;86-real;86-virtual" -> "sass:50,86 ptx:86"
#                                                (both in cmake/mrcnn_cuda_archs.cmake)
cmake_minimum_required(VERSION 3.19)   # string(JSON)
include_guard(GLOBAL)
include(${CMAKE_CURRENT_LIST_DIR}/mrcnn_cuda_archs.cmake)

get_filename_component(MRCNN_REPO_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(MRCNN_NATIVE_JSON_FILE "${MRCNN_REPO_DIR}/plugins/native.json")
set_property(DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${MRCNN_NATIVE_JSON_FILE}")
file(READ "${MRCNN_NATIVE_JSON_FILE}" _mrcnn_native_json)
set_property(GLOBAL PROPERTY MRCNN_NATIVE_JSON "${_mrcnn_native_json}")
string(JSON _mrcnn_format GET "${_mrcnn_native_json}" format)
if(NOT _mrcnn_format STREQUAL "mrcnn-native/1")
  message(FATAL_ERROR "${MRCNN_NATIVE_JSON_FILE}: format '${_mrcnn_format}', expected 'mrcnn-native/1'")
endif()

# _mrcnn_json_list(OUT KEY...): the JSON array at KEY... as a CMake list (empty when absent).
function(_mrcnn_json_list out)
  get_property(json GLOBAL PROPERTY MRCNN_NATIVE_JSON)
  string(JSON n ERROR_VARIABLE err LENGTH "${json}" ${ARGN})
  set(items "")
  if(NOT err AND n GREATER 0)
    math(EXPR last "${n} - 1")
    foreach(i RANGE ${last})
      string(JSON item GET "${json}" ${ARGN} ${i})
      list(APPEND items "${item}")
    endforeach()
  endif()
  set(${out} "${items}" PARENT_SCOPE)
endfunction()

# _mrcnn_json_string(OUT KEY...): the string at KEY... (empty when absent).
function(_mrcnn_json_string out)
  get_property(json GLOBAL PROPERTY MRCNN_NATIVE_JSON)
  string(JSON value ERROR_VARIABLE err GET "${json}" ${ARGN})
  if(err)
    set(value "")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

# The op folders, in contract order, from X(Op, folder) of the ops macro.
_mrcnn_json_string(_mrcnn_ops_header ops header)
_mrcnn_json_string(_mrcnn_ops_macro ops macro)
set_property(DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${MRCNN_REPO_DIR}/${_mrcnn_ops_header}")
file(STRINGS "${MRCNN_REPO_DIR}/${_mrcnn_ops_header}" _mrcnn_ops_line REGEX "^#define ${_mrcnn_ops_macro}\\(X\\)")
string(REGEX MATCHALL "X\\( *[A-Za-z0-9_]+ *, *[A-Za-z0-9_]+ *\\)" _mrcnn_op_entries "${_mrcnn_ops_line}")
set(MRCNN_OP_FOLDERS "")
foreach(_e IN LISTS _mrcnn_op_entries)
  string(REGEX REPLACE "X\\( *[A-Za-z0-9_]+ *, *([A-Za-z0-9_]+) *\\)" "\\1" _folder "${_e}")
  list(APPEND MRCNN_OP_FOLDERS "${_folder}")
endforeach()
if(NOT MRCNN_OP_FOLDERS)
  message(FATAL_ERROR "${_mrcnn_ops_header}: no op in #define ${_mrcnn_ops_macro}(X)")
endif()
set_property(GLOBAL PROPERTY MRCNN_OP_FOLDERS "${MRCNN_OP_FOLDERS}")
_mrcnn_json_list(MRCNN_EXACT_CXX_FLAGS exact_math cxx)
_mrcnn_json_list(MRCNN_EXACT_CUDA_FLAGS exact_math cuda)
set_property(GLOBAL PROPERTY MRCNN_EXACT_CXX_FLAGS "${MRCNN_EXACT_CXX_FLAGS}")
set_property(GLOBAL PROPERTY MRCNN_EXACT_CUDA_FLAGS "${MRCNN_EXACT_CUDA_FLAGS}")

function(mrcnn_native_sources name out)
  _mrcnn_json_list(own targets ${name} sources)
  _mrcnn_json_list(per_op targets ${name} per_op)
  get_property(folders GLOBAL PROPERTY MRCNN_OP_FOLDERS)
  foreach(pattern IN LISTS per_op)
    foreach(folder IN LISTS folders)
      string(REPLACE "{folder}" "${folder}" src "${pattern}")
      list(APPEND own "${src}")
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES own)
  list(TRANSFORM own PREPEND "${MRCNN_REPO_DIR}/")
  set(${out} "${own}" PARENT_SCOPE)
endfunction()

function(mrcnn_native_add name)
  get_property(json GLOBAL PROPERTY MRCNN_NATIVE_JSON)
  string(JSON kind ERROR_VARIABLE err GET "${json}" targets ${name} kind)
  if(err)
    message(FATAL_ERROR "plugins/native.json has no target '${name}'")
  endif()
  set(tgt mrcnn_${name})
  mrcnn_native_sources(${name} sources)
  if(kind STREQUAL "object")
    add_library(${tgt} OBJECT ${sources})
    set(scope PUBLIC)
  elseif(kind STREQUAL "static")
    add_library(${tgt} STATIC ${sources})
    set(scope PUBLIC)
  elseif(kind STREQUAL "shared")
    add_library(${tgt} SHARED ${sources})
    set(scope PRIVATE)
  elseif(kind STREQUAL "executable")
    add_executable(${tgt} ${sources})
    set(scope PRIVATE)
  else()
    message(FATAL_ERROR "plugins/native.json: target '${name}' of kind '${kind}' is not built by CMake")
  endif()
  target_compile_features(${tgt} PUBLIC cxx_std_17)
  set_target_properties(${tgt} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_EXTENSIONS OFF)

  _mrcnn_json_list(dirs targets ${name} include_dirs)
  list(TRANSFORM dirs PREPEND "${MRCNN_REPO_DIR}/")
  if(dirs)
    target_include_directories(${tgt} ${scope} ${dirs})
  endif()
  _mrcnn_json_list(defines targets ${name} defines)
  if(defines)
    target_compile_definitions(${tgt} ${scope} ${defines})
  endif()

  get_property(exact_cxx GLOBAL PROPERTY MRCNN_EXACT_CXX_FLAGS)
  get_property(exact_cuda GLOBAL PROPERTY MRCNN_EXACT_CUDA_FLAGS)
  _mrcnn_json_list(extra targets ${name} cxx_flags)
  target_compile_options(${tgt} PRIVATE
    "$<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang,AppleClang>>:${exact_cxx};${extra};-Wall;-Wextra>"
    "$<$<COMPILE_LANGUAGE:CUDA>:${exact_cuda}>")
  _mrcnn_json_list(link_flags targets ${name} link_flags)
  if(link_flags)
    target_link_options(${tgt} PRIVATE ${link_flags})
  endif()

  _mrcnn_json_list(uses targets ${name} uses)
  foreach(u IN LISTS uses)
    if(NOT TARGET mrcnn_${u})
      message(FATAL_ERROR "mrcnn_${name} uses mrcnn_${u}, which is not defined yet")
    endif()
    target_link_libraries(${tgt} PRIVATE mrcnn_${u})
  endforeach()

  _mrcnn_json_string(map targets ${name} export_map)
  if(map)
    target_link_options(${tgt} PRIVATE "LINKER:--version-script=${MRCNN_REPO_DIR}/${map}")
    set_property(TARGET ${tgt} APPEND PROPERTY LINK_DEPENDS "${MRCNN_REPO_DIR}/${map}")
  endif()
endfunction()
