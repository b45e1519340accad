{module, 'Elixir.Bx'}.  %% version = 0

{exports, [{'__info__',1},{instrumented,4},{module_info,0},{module_info,1}]}.

{attributes, []}.

{labels, 18}.


{function, '__info__', 1, 2}.
  {label,1}.
    {line,[]}.
    {func_info,{atom,'Elixir.Bx'},{atom,'__info__'},1}.
  {label,2}.
    {select_val,{x,0},
                {f,9},
                {list,[{atom,attributes},
                       {f,8},
                       {atom,compile},
                       {f,8},
                       {atom,deprecated},
                       {f,7},
                       {atom,exports_md5},
                       {f,6},
                       {atom,functions},
                       {f,5},
                       {atom,macros},
                       {f,7},
                       {atom,md5},
                       {f,8},
                       {atom,module},
                       {f,4},
                       {atom,struct},
                       {f,3}]}}.
  {label,3}.
    {move,{atom,nil},{x,0}}.
    return.
  {label,4}.
    {move,{atom,'Elixir.Bx'},{x,0}}.
    return.
  {label,5}.
    {move,{literal,[{instrumented,4}]},{x,0}}.
    return.
  {label,6}.
    {move,{literal,<<221,20,60,177,103,213,226,214,210,105,125,151,251,77,25,
                     24>>},
          {x,0}}.
    return.
  {label,7}.
    {move,nil,{x,0}}.
    return.
  {label,8}.
    {move,{x,0},{x,1}}.
    {move,{atom,'Elixir.Bx'},{x,0}}.
    {call_ext_only,2,{extfunc,erlang,get_module_info,2}}.
  {label,9}.
    {call_only,1,{f,17}}. % '-inlined-__info__/1-'/1


{function, instrumented, 4, 11}.
  {label,10}.
    {line,[]}.
    {func_info,{atom,'Elixir.Bx'},{atom,instrumented},4}.
  {label,11}.
    {gc_bif,'+',{f,0},4,[{x,0},{x,1}],{x,0}}.
    {test_heap,4,4}.
    {put_tuple2,{x,0},{list,[{x,0},{x,2},{x,3}]}}.
    return.


{function, module_info, 0, 13}.
  {label,12}.
    {line,[]}.
    {func_info,{atom,'Elixir.Bx'},{atom,module_info},0}.
  {label,13}.
    {move,{atom,'Elixir.Bx'},{x,0}}.
    {call_ext_only,1,{extfunc,erlang,get_module_info,1}}.


{function, module_info, 1, 15}.
  {label,14}.
    {line,[]}.
    {func_info,{atom,'Elixir.Bx'},{atom,module_info},1}.
  {label,15}.
    {move,{x,0},{x,1}}.
    {move,{atom,'Elixir.Bx'},{x,0}}.
    {call_ext_only,2,{extfunc,erlang,get_module_info,2}}.


{function, '-inlined-__info__/1-', 1, 17}.
  {label,16}.
    {line,[]}.
    {func_info,{atom,'Elixir.Bx'},{atom,'-inlined-__info__/1-'},1}.
  {label,17}.
    {jump,{f,16}}.
