{
  "variables": { "nexio_has_rdma%": "<!(node detect.js)" },
  "targets": [
    {
      "target_name": "nexio_rdma",
      "conditions": [
        ["nexio_has_rdma==1", {
          "sources": ["src/addon.cc", "src/cm.cc", "src/device.cc", "src/qp.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
          "cflags_cc": ["-std=c++17", "-fno-exceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
          "cflags_cc!": ["-fexceptions"],
          "libraries": ["-lrdmacm", "-libverbs"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
