# The native data plane (see src/plane.h). Node-API only: one build serves every Node.js
# from 20 on. Warnings are errors; FAITHD6_SANITIZE=1 builds it with AddressSanitizer and
# UndefinedBehaviorSanitizer (the CI job that runs the relay tests against it).
{
  "variables": { "sanitize%": "<!(echo ${FAITHD6_SANITIZE:-0})" },
  "targets": [
    {
      "target_name": "faithd6",
      "sources": ["src/binding.c", "src/plane.c", "src/copy.c", "src/heap.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes", "-O2", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        ["sanitize==1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
